/* memsink.c — placeholder until implemented. */
