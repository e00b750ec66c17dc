/*
 * Errors raised on the parent side. Functions fill a struct dl_error and
 * return a negative value (crun style); the N-API entry point turns it into
 * the JS error with dl_error_throw: SystemError and ContainerStartError are
 * the TypeScript classes handed to init(), so `instanceof` works in JS.
 */
#ifndef DOCKLESS_ERROR_H
#define DOCKLESS_ERROR_H

#include <node_api.h>

enum dl_error_kind
{
  DL_ERR_NONE = 0,
  DL_ERR_SYSTEM,  /* SystemError(syscall, errno, message) */
  DL_ERR_TYPE,    /* TypeError ERR_INVALID_ARG_TYPE: a value of the wrong type */
  DL_ERR_VALUE,   /* TypeError ERR_INVALID_ARG_VALUE: a value of the right type that is not allowed */
  DL_ERR_RANGE,   /* RangeError: a value out of bounds */
  DL_ERR_PENDING, /* a JS exception is already pending (a getter threw) */
};

struct dl_error
{
  enum dl_error_kind kind;
  int errnum;
  const char *syscall;
  char message[512];
};

int dl_error_system (struct dl_error *err, int errnum, const char *syscall, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
int dl_error_type (struct dl_error *err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
int dl_error_value (struct dl_error *err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
int dl_error_range (struct dl_error *err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* Records a failed N-API call: keeps a pending JS exception, else describes the status. */
int dl_error_napi (struct dl_error *err, napi_env env, napi_status status, const char *what);

/* Throws err in JS; always returns NULL so entry points can `return dl_error_throw (...)`. */
napi_value dl_error_throw (napi_env env, const struct dl_error *err);
/* Throws SystemError(syscall, errnum) directly. */
napi_value dl_throw_system (napi_env env, const char *syscall, int errnum, const char *detail);
/* Builds (does not throw) a ContainerStartError(step, errnum, detail). */
napi_value dl_make_start_error (napi_env env, const char *step, int errnum, const char *detail);

/* Keeps the classes given to init(). */
napi_status dl_error_set_classes (napi_env env, napi_value system_error, napi_value start_error);

/* The first n arguments of a call; missing ones read as undefined (the
   checks that follow then name them). */
int dl_get_args (napi_env env, napi_callback_info info, size_t n, napi_value *argv);

#endif
