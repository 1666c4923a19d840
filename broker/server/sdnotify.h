/*
 * systemd readiness notification (Type=notify): the datagram protocol of
 * sd_notify(3), written out rather than linking libsystemd. The protocol is
 * documented as stable, it is one sendto(), and this keeps ternd's
 * dependencies (and the container image) the same with or without systemd.
 * Without NOTIFY_SOCKET in the environment every call does nothing.
 */
#ifndef TERND_SDNOTIFY_H
#define TERND_SDNOTIFY_H

/* Sends state ("READY=1", several "KEY=VALUE" lines separated by '\n') to
 * $NOTIFY_SOCKET. 0 when sent or when there is no NOTIFY_SOCKET, else a
 * negative errno; never blocks. */
int sdnotify(const char *state);

/* The three moments ternd reports; failures are logged at debug level (a
 * supervisor that stopped listening must not stop the broker). status is
 * a line for "systemctl status", or NULL. */
void sdnotify_ready(const char *status);
void sdnotify_reloading(void);
void sdnotify_stopping(void);

#endif
