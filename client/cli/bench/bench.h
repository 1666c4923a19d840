/*
 * tern bench: a load generator for tern and, through the same code, for
 * NATS, Redis pub/sub and MQTT brokers (see bench/README in the repo root).
 */
#ifndef TERN_BENCH_H
#define TERN_BENCH_H

/*
 * Runs `tern bench` with getopt conventions: argv[0] is the command's name
 * ("bench"), options follow. Prints the report on stdout (--json: one JSON
 * object), errors on stderr. Returns the process exit status: 0 done with no
 * loss, 1 the run failed or lost messages, 2 usage error.
 */
int tern_bench_main(int argc, char **argv);

#endif
