"""Generated gRPC code (scripts/gen-proto.sh); never edited by hand."""
