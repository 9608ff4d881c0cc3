/* buffers.c — placeholder until implemented. */
