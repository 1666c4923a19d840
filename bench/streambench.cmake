# bench/streambench: durable streams against tern, NATS JetStream and Redis
# Streams (bench/run-streams.sh).
add_executable(streambench ${CMAKE_CURRENT_LIST_DIR}/streambench.c)
target_link_libraries(streambench PRIVATE tern_protocol Threads::Threads)
set_target_properties(streambench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
