/*
 * The open-file limit: every connection is a descriptor, and the default
 * soft limit (often 1024) would refuse clients long before memory runs
 * out, so ternd raises its soft limit to the hard one at startup.
 */
#ifndef TERND_FDLIMIT_H
#define TERND_FDLIMIT_H

/* Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft
 * limit in effect afterwards (or -1 when it cannot be read). */
long fdlimit_raise(void);

#endif
