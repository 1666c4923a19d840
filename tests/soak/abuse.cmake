# The abuse phase's driver (scripts/soak.sh --abuse runs it; not a ctest
# entry). Included from tests/broker/reliability.cmake.
add_executable(tern_soak_abuse ${CMAKE_CURRENT_LIST_DIR}/abuse.c)
set_target_properties(tern_soak_abuse PROPERTIES
                      RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
target_link_libraries(tern_soak_abuse PRIVATE tern_test_support tern_protocol
                      Threads::Threads)
tern_target_defaults(tern_soak_abuse)
