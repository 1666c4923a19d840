# Reliability tests (issue 6): hostile input, churn, shutdown under traffic,
# limits, and ternd under valgrind. Included from CMakeLists.txt.
find_package(Threads REQUIRED)

set(TERN_RELIABILITY_TESTS
  test_hostile
  test_churn
)
foreach(t IN LISTS TERN_RELIABILITY_TESTS)
  tern_add_test(${t} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/${t}.c
                LIBS tern_test_support tern_protocol Threads::Threads
                LABELS integration reliability TIMEOUT 300)
endforeach()
