/* gzip.c — placeholder until implemented. */
