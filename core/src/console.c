/* console.c — placeholder until implemented. */
