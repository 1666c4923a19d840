/*
 * tern-bench: runs tern_bench_main on its own, for use before (and beside)
 * the `tern bench` subcommand of the CLI.
 */
#include "bench.h"

int main(int argc, char **argv) { return tern_bench_main(argc, argv); }
