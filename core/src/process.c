/* process.c — placeholder until implemented. */
