/* Error codes and option parsing: no broker needed. */
#include <criterion/criterion.h>
#include <string.h>
#include <tern/tern.h>
#include <uv.h>

Test(client_errors, every_code_has_text_and_name) {
  int n = 0;
#define CHECK_CODE(name, val, msg)                                             \
  cr_expect_str_eq(tern_strerror(TERN_E##name), msg);                          \
  cr_expect_str_eq(tern_err_name(TERN_E##name), "TERN_E" #name);               \
  cr_expect(TERN_E##name <= -20000 && TERN_E##name > -21000);                  \
  n++;
  TERN_ERRNO_MAP(CHECK_CODE)
#undef CHECK_CODE
  cr_assert_gt(n, 10);
  cr_expect_str_eq(tern_strerror(0), "success");
  cr_expect_str_eq(tern_strerror(-29999), "unknown error");
  cr_expect_str_eq(tern_err_name(-29999), "UNKNOWN");
}

Test(client_errors, libuv_codes_pass_through) {
  cr_expect_str_eq(tern_strerror(UV_ECONNREFUSED),
                   uv_strerror(UV_ECONNREFUSED));
  cr_expect_str_eq(tern_err_name(UV_EOF), "EOF");
}

Test(client_errors, wire_codes_map) {
  cr_expect_eq(tern_err_from_wire(2), TERN_EAUTH);
  cr_expect_eq(tern_err_from_wire(4), TERN_ETOPIC);
  cr_expect_eq(tern_err_from_wire(13), TERN_ETOOLARGE);
  cr_expect_eq(tern_err_from_wire(99), TERN_ESERVER);
}

Test(client_options, defaults) {
  tern_options_t o;
  tern_options_init(&o);
  cr_expect_str_eq(o.host, "127.0.0.1");
  cr_expect_eq(o.port, 7421);
  cr_expect(o.echo);
  cr_expect_not(o.verbose);
  cr_expect_eq(o.outbound_limit, 8u * 1024u * 1024u);
  cr_expect_str_eq(o.inbox_prefix, "_INBOX");
}

Test(client_options, urls) {
  tern_options_t o;
  tern_options_init(&o);
  cr_assert_eq(tern_options_set_url(&o, "example.org:1234"), 0);
  cr_expect_str_eq(o.host, "example.org");
  cr_expect_eq(o.port, 1234);
  cr_assert_eq(tern_options_set_url(&o, "tern://10.0.0.1:99"), 0);
  cr_expect_str_eq(o.host, "10.0.0.1");
  cr_expect_eq(o.port, 99);
  cr_assert_eq(tern_options_set_url(&o, "[::1]:7000"), 0);
  cr_expect_str_eq(o.host, "::1");
  cr_expect_eq(o.port, 7000);
  cr_assert_eq(tern_options_set_url(&o, "onlyhost"), 0);
  cr_expect_str_eq(o.host, "onlyhost");
  cr_expect_eq(o.port, 7000);
  cr_expect_eq(tern_options_set_url(&o, "h:0"), TERN_EBADURL);
  cr_expect_eq(tern_options_set_url(&o, "h:70000"), TERN_EBADURL);
  cr_expect_eq(tern_options_set_url(&o, "h:12x"), TERN_EBADURL);
  cr_expect_eq(tern_options_set_url(&o, ":12"), TERN_EBADURL);
  cr_expect_eq(tern_options_set_url(&o, "::1:5"), TERN_EBADURL);
  cr_expect_str_eq(o.host, "onlyhost"); /* unchanged by failures */
}
