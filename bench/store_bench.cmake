# Micro-benchmark of the stream store (not a test): build/bin/store_bench
# append|replay|open (bench/README.md). Include from the top-level
# CMakeLists.txt after add_subdirectory(broker).
add_executable(store_bench ${CMAKE_CURRENT_LIST_DIR}/store_bench.c)
target_link_libraries(store_bench PRIVATE ternd_core)
tern_target_defaults(store_bench)
