/*
 * One error space: libuv's codes, the protocol library's (TP_E*) and the
 * broker's own (TERND_E*) are negative ints that may meet in one variable
 * (an accept that fails in libuv or in a decoder), so no value may belong
 * to two of them, and ternd_strerror names each by its range.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <uv.h>

#include "base/errors.h"
#include "tern_proto/errors.h"

static const int uv_codes[] = {
#define UV_CODE(name, msg) UV_##name,
    UV_ERRNO_MAP(UV_CODE)
#undef UV_CODE
};

static const int tp_codes[] = {
#define TP_CODE(name, val, wire, msg) name,
    TP_ERR_MAP(TP_CODE)
#undef TP_CODE
};

static const int ternd_codes[] = {
#define TERND_CODE(name, val, msg) name,
    TERND_ERR_MAP(TERND_CODE)
#undef TERND_CODE
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(error_space, protocol_codes_are_in_their_range_and_not_libuvs) {
  for (size_t i = 0; i < N(tp_codes); i++) {
    int c = tp_codes[i];
    cr_expect(c <= TP_ERR_FIRST && c >= TP_ERR_LAST, "TP code %d", c);
    cr_expect(tp_err_is(c));
    for (size_t j = 0; j < N(uv_codes); j++)
      cr_expect_neq(c, uv_codes[j], "TP code %d is also libuv's %s", c,
                    uv_err_name(c));
  }
  for (size_t j = 0; j < N(uv_codes); j++)
    cr_expect(!tp_err_is(uv_codes[j]), "libuv's %d in TP's range", uv_codes[j]);
}

Test(error_space, broker_codes_are_in_their_range_and_no_one_elses) {
  for (size_t i = 0; i < N(ternd_codes); i++) {
    int c = ternd_codes[i];
    cr_expect(ternd_err_is(c) && !tp_err_is(c), "ternd code %d", c);
    for (size_t j = 0; j < N(uv_codes); j++)
      cr_expect_neq(c, uv_codes[j]);
  }
  /* libtern's range (client/include/tern/errors.h) */
  cr_expect(!ternd_err_is(-20001) && !tp_err_is(-20001));
}

Test(error_space, strerror_names_each_by_its_range) {
  cr_expect_str_eq(ternd_strerror(TP_ENOMEM), tp_strerror(TP_ENOMEM));
  cr_expect_str_eq(ternd_strerror(TP_EPROTO), "malformed frame");
  cr_expect_str_eq(ternd_strerror(UV_EMFILE), uv_strerror(UV_EMFILE));
  cr_expect_str_eq(ternd_strerror(UV_EPERM), uv_strerror(UV_EPERM));
  cr_expect_str_eq(ternd_strerror(TERND_ERETAINED_TOPICS),
                   "too many retained topics");
  cr_expect_str_eq(ternd_strerror(0), "success");
}
