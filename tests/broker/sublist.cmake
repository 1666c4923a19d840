# Unit test of the broker's subject index (sublist*.c, hashmap.c in
# ternd_core). Included by tests/broker/CMakeLists.txt.
tern_add_test(test_sublist
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sublist.c
  LIBS ternd_core
  LABELS unit
  TIMEOUT 120)
