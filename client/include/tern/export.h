/*
 * TERN_EXTERN marks the public symbols of libtern. The library is built with
 * -fvisibility=hidden, so everything else stays private to the .so.
 */
#ifndef TERN_EXPORT_H
#define TERN_EXPORT_H

#if defined(TERN_BUILDING_SHARED) && defined(__GNUC__)
#define TERN_EXTERN __attribute__((visibility("default")))
#else
#define TERN_EXTERN
#endif

#endif
