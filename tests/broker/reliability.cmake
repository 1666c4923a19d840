# Reliability tests (issue 6): hostile input, churn, shutdown under traffic,
# limits, and ternd under valgrind. Included from CMakeLists.txt.
find_package(Threads REQUIRED)

set(TERN_RELIABILITY_TESTS
  test_hostile
  test_churn
  test_shutdown_traffic
  test_limits
)
foreach(t IN LISTS TERN_RELIABILITY_TESTS)
  tern_add_test(${t} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/${t}.c
                LIBS tern_test_support tern_protocol Threads::Threads
                LABELS integration reliability TIMEOUT 300)
endforeach()

# ternd under valgrind memcheck: a sanitized ternd cannot run under it.
if(TERN_SANITIZE)
  message(STATUS "test_valgrind not registered: TERN_SANITIZE is set "
                 "(valgrind cannot run sanitized binaries)")
else()
  find_program(TERN_VALGRIND valgrind)
  if(TERN_VALGRIND)
    tern_add_test(test_valgrind SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_valgrind.c
                  LIBS tern_test_support tern_protocol
                  LABELS valgrind TIMEOUT 600)
    target_compile_definitions(test_valgrind PRIVATE
                               TERN_VALGRIND_PATH="${TERN_VALGRIND}")
    # Its TLS run uses the test certificates (tests/support, tls_certs).
    set_tests_properties(test_valgrind PROPERTIES
      ENVIRONMENT "TERN_TEST_CERTS=${TERN_TEST_CERTS}"
      FIXTURES_REQUIRED tls_certs)
  else()
    message(STATUS "test_valgrind not registered: valgrind not found "
                   "(apt-get install valgrind; scripts/install-deps.sh does)")
  endif()
endif()

# The soak driver (scripts/soak.sh runs it; not a ctest entry).
add_executable(tern_soak ${CMAKE_CURRENT_SOURCE_DIR}/../soak/soak.c)
set_target_properties(tern_soak PROPERTIES
                      RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
target_link_libraries(tern_soak PRIVATE tern_test_support tern_protocol
                      Threads::Threads)
tern_target_defaults(tern_soak)
include(${CMAKE_CURRENT_SOURCE_DIR}/../soak/abuse.cmake)
