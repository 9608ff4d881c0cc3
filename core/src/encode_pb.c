/* encode_pb.c — placeholder until implemented. */
