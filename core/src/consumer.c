/* consumer.c — placeholder until implemented. */
