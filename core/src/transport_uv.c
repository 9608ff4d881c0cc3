/* transport_uv.c — placeholder until implemented. */
