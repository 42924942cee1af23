"""Redis, derived data only: timeline keys, their encoding, the bulk writer and the pipelined reader."""
