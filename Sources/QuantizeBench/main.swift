// Benchmarks: run through tools/bench.sh, which builds in release mode and prints the tables.
print("no benchmarks registered yet")
