/* phase.c — placeholder until implemented. */
