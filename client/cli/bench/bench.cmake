# tern bench: the load generator behind `tern bench` (a static library the
# CLI links) and a stand-alone driver, build/bin/tern-bench.
# Include from client/cli/CMakeLists.txt (or anywhere after tern_protocol).
set(TERN_BENCH_DIR ${CMAKE_CURRENT_LIST_DIR})
find_package(Threads REQUIRED)

add_library(tern_bench STATIC
  ${TERN_BENCH_DIR}/bench.c
  ${TERN_BENCH_DIR}/worker.c
  ${TERN_BENCH_DIR}/report.c
  ${TERN_BENCH_DIR}/conn.c
  ${TERN_BENCH_DIR}/histogram.c
  ${TERN_BENCH_DIR}/adapter_tern.c
  ${TERN_BENCH_DIR}/adapter_nats.c
  ${TERN_BENCH_DIR}/adapter_redis.c
  ${TERN_BENCH_DIR}/adapter_mqtt.c
)
target_include_directories(tern_bench PUBLIC ${TERN_BENCH_DIR})
target_link_libraries(tern_bench PUBLIC tern_protocol Threads::Threads)
tern_target_defaults(tern_bench)

add_executable(tern_bench_driver ${TERN_BENCH_DIR}/driver.c)
target_link_libraries(tern_bench_driver PRIVATE tern_bench)
set_target_properties(tern_bench_driver PROPERTIES OUTPUT_NAME tern-bench)
tern_target_defaults(tern_bench_driver)
