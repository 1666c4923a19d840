/* The blocking API in twenty lines: subscribe, publish, receive, close. */
#include <stdio.h>
#include <tern/tern.h>

int main(void) {
  tern_client_t *cl;
  tern_sub_t *sub;
  tern_msg_t *msg;
  int rc = tern_client_connect(&cl, NULL); /* 127.0.0.1:7421 */
  if (rc != 0) {
    fprintf(stderr, "connect: %s\n", tern_strerror(rc));
    return 1;
  }
  tern_client_subscribe(cl, &sub, "greet.*", NULL);
  tern_client_publish(cl, "greet.world", "hello", 5, NULL);
  if (tern_sub_next(sub, 1000, &msg) == 0) {
    printf("%s: %.*s\n", tern_msg_topic(msg), (int)tern_msg_len(msg),
           (const char *)tern_msg_data(msg));
    tern_msg_release(msg);
  }
  tern_client_close(cl); /* also destroys sub */
  return 0;
}
