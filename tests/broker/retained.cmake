# Unit test of the broker's retained store (retained.c in ternd_core).
tern_add_test(test_retained
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_retained.c
  LIBS ternd_core
  LABELS unit
  TIMEOUT 120)
