# Unit test of the broker's retained store (broker/src/retained.c).
set(TERN_RETAINED_SRC_DIR ${CMAKE_CURRENT_LIST_DIR}/../../broker/src)
tern_add_test(test_retained
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_retained.c
          ${TERN_RETAINED_SRC_DIR}/retained.c
          ${TERN_RETAINED_SRC_DIR}/msgbuf.c
          ${TERN_RETAINED_SRC_DIR}/hashmap.c
  LIBS tern_protocol PkgConfig::LIBUV
  LABELS unit
  TIMEOUT 120)
target_include_directories(test_retained PRIVATE ${TERN_RETAINED_SRC_DIR})
