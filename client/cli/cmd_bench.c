/*
 * tern bench: hands over to the load generator (client/cli/bench). It parses
 * its own options, including -s/--server, because its default address
 * depends on --broker (tern 7421, nats 4222, redis 6379, mqtt 1883), which
 * the global default (127.0.0.1:7421) would override.
 */
#include <stdlib.h>

#include "bench.h"
#include "commands.h"

int cli_cmd_bench(int argc, char **argv, cli_common_t *common) {
  int rc;
  /* tern_bench_main wants argv[0] == "bench", then the caller's words. */
  char **args = calloc((size_t)argc + 2, sizeof(*args));
  (void)common;
  if (args == NULL) {
    return CLI_EXIT_FAIL;
  }
  args[0] = "bench";
  for (int i = 0; i < argc; i++) {
    args[i + 1] = argv[i];
  }
  rc = tern_bench_main(argc + 1, args);
  free(args);
  return rc;
}
