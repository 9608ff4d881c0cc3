/* clock.c — placeholder until implemented. */
