/* encode_json.c — placeholder until implemented. */
