# Micro-benchmark of the subject index (not a test): build/bin/sublist_bench.
# Include from the top-level CMakeLists.txt after add_subdirectory(broker).
add_executable(sublist_bench ${CMAKE_CURRENT_LIST_DIR}/sublist_bench.c)
target_link_libraries(sublist_bench PRIVATE ternd_core)
tern_target_defaults(sublist_bench)

# What the tools below that talk to a running ternd share (probe.h).
add_library(tern_bench_probe STATIC ${CMAKE_CURRENT_LIST_DIR}/probe.c)
target_link_libraries(tern_bench_probe PUBLIC tern_protocol)
target_include_directories(tern_bench_probe PUBLIC ${CMAKE_CURRENT_LIST_DIR})
tern_target_defaults(tern_bench_probe)

# Memory per idle connection and per subscription of a running ternd (not a
# test): build/bin/conn_mem PID HOST PORT [CONNS [SUBS]].
add_executable(conn_mem ${CMAKE_CURRENT_LIST_DIR}/conn_mem.c)
target_link_libraries(conn_mem PRIVATE tern_bench_probe)
tern_target_defaults(conn_mem)

# Abuse of the monitoring port, descriptors and the log.
add_executable(mon_abuse ${CMAKE_CURRENT_LIST_DIR}/mon_abuse.c)
target_link_libraries(mon_abuse PRIVATE tern_bench_probe)
tern_target_defaults(mon_abuse)

# Good logins during a bad-password flood, and a login's cost, against a
# running ternd (not a test): build/bin/login_flood flood|timing PORT USER ...
find_package(Threads REQUIRED)
add_executable(login_flood ${CMAKE_CURRENT_LIST_DIR}/login_flood.c)
target_link_libraries(login_flood PRIVATE tern_protocol Threads::Threads)
tern_target_defaults(login_flood)

# What subscribers that stop reading do to an unrelated pair (not a test):
# build/bin/pressure_probe PID HOST PORT [NSUBS [COUNT [SIZE [POLICY]]]].
find_package(Threads REQUIRED)
add_executable(pressure_probe ${CMAKE_CURRENT_LIST_DIR}/pressure_probe.c)
target_link_libraries(pressure_probe PRIVATE tern_bench_probe Threads::Threads)
tern_target_defaults(pressure_probe)
