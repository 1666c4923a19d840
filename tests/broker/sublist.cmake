# Unit test of the broker's subject index (sublist*.c, hashmap.c in
# ternd_core). Included by tests/broker/CMakeLists.txt.
tern_add_test(test_sublist
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sublist.c
  LIBS ternd_core
  LABELS unit
  TIMEOUT 120)

# Hash flooding: keys that collided under the old, unkeyed table hash cost
# no more to look up than any others (hashmap.c, the subject index and the
# retained store).
tern_add_test(test_hash_flood
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_hash_flood.c
  LIBS ternd_core
  LABELS unit
  TIMEOUT 120)
