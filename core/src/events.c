/* events.c — placeholder until implemented. */
