"""Pure rules of the course pipeline: plain data in, plain data out; no Beam, no servers."""
