# Unit test of the broker's subject index (broker/src/sublist*.c, hashmap.c).
# Included by tests/broker/CMakeLists.txt; paths are relative to this file so
# that it also works when included from another project.
set(TERN_SUBLIST_SRC_DIR ${CMAKE_CURRENT_LIST_DIR}/../../broker/src)
tern_add_test(test_sublist
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sublist.c
          ${TERN_SUBLIST_SRC_DIR}/sublist.c
          ${TERN_SUBLIST_SRC_DIR}/sublist_set.c
          ${TERN_SUBLIST_SRC_DIR}/hashmap.c
  LIBS tern_protocol
  LABELS unit
  TIMEOUT 120)
target_include_directories(test_sublist PRIVATE ${TERN_SUBLIST_SRC_DIR})
