#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "addon.h"

static int
error_vset (struct dl_error *err, enum dl_error_kind kind, int errnum, const char *syscall,
            const char *fmt, va_list ap)
{
  err->kind = kind;
  err->errnum = errnum;
  err->syscall = syscall;
  if (fmt)
    vsnprintf (err->message, sizeof (err->message), fmt, ap);
  else
    err->message[0] = '\0';
  return -1;
}

int
dl_error_system (struct dl_error *err, int errnum, const char *syscall, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  error_vset (err, DL_ERR_SYSTEM, errnum, syscall, fmt, ap);
  va_end (ap);
  return -1;
}

int
dl_error_type (struct dl_error *err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  error_vset (err, DL_ERR_TYPE, 0, NULL, fmt, ap);
  va_end (ap);
  return -1;
}

int
dl_error_value (struct dl_error *err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  error_vset (err, DL_ERR_VALUE, 0, NULL, fmt, ap);
  va_end (ap);
  return -1;
}

int
dl_error_range (struct dl_error *err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  error_vset (err, DL_ERR_RANGE, 0, NULL, fmt, ap);
  va_end (ap);
  return -1;
}

int
dl_error_napi (struct dl_error *err, napi_env env, napi_status status, const char *what)
{
  bool pending = false;
  if (status == napi_pending_exception
      || (napi_is_exception_pending (env, &pending) == napi_ok && pending))
    {
      err->kind = DL_ERR_PENDING;
      return -1;
    }
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info (env, &info);
  return dl_error_type (err, "%s: %s", what,
                        info && info->error_message ? info->error_message : "invalid value");
}

static napi_value
new_instance (napi_env env, napi_ref ctor_ref, const char *first, int errnum, const char *detail)
{
  napi_value ctor, argv[3], result = NULL;
  if (ctor_ref == NULL || napi_get_reference_value (env, ctor_ref, &ctor) != napi_ok || ctor == NULL)
    return NULL;
  if (napi_create_string_utf8 (env, first, NAPI_AUTO_LENGTH, &argv[0]) != napi_ok
      || napi_create_int32 (env, errnum, &argv[1]) != napi_ok)
    return NULL;
  if (detail && detail[0])
    {
      if (napi_create_string_utf8 (env, detail, NAPI_AUTO_LENGTH, &argv[2]) != napi_ok)
        return NULL;
    }
  else if (napi_get_undefined (env, &argv[2]) != napi_ok)
    return NULL;
  if (napi_new_instance (env, ctor, 3, argv, &result) != napi_ok)
    return NULL;
  return result;
}

napi_value
dl_throw_system (napi_env env, const char *syscall, int errnum, const char *detail)
{
  struct dl_addon *addon = dl_addon_get (env);
  if (addon == NULL)
    return NULL;
  napi_value e = new_instance (env, addon->system_error, syscall, errnum, detail);
  bool pending = false;
  if (napi_is_exception_pending (env, &pending) == napi_ok && pending)
    return NULL;
  if (e == NULL)
    {
      /* init() was not called: still fail loudly, as a plain Error. */
      char msg[600];
      snprintf (msg, sizeof (msg), "%s failed: %s%s%s%s", syscall, strerror (errnum),
                detail && detail[0] ? " (" : "", detail && detail[0] ? detail : "",
                detail && detail[0] ? ")" : "");
      napi_throw_error (env, "ERR_SYSTEM", msg);
      return NULL;
    }
  napi_throw (env, e);
  return NULL;
}

napi_value
dl_make_start_error (napi_env env, const char *step, int errnum, const char *detail)
{
  struct dl_addon *addon = dl_addon_get (env);
  if (addon == NULL)
    return NULL;
  napi_value e = new_instance (env, addon->start_error, step, errnum, detail);
  if (e == NULL)
    {
      napi_value msg;
      char buf[600];
      snprintf (buf, sizeof (buf), "container start failed at %s: %s", step, strerror (errnum));
      if (napi_create_string_utf8 (env, buf, NAPI_AUTO_LENGTH, &msg) != napi_ok
          || napi_create_error (env, NULL, msg, &e) != napi_ok)
        return NULL;
    }
  return e;
}

napi_value
dl_error_throw (napi_env env, const struct dl_error *err)
{
  switch (err->kind)
    {
    case DL_ERR_SYSTEM:
      return dl_throw_system (env, err->syscall ? err->syscall : "dockless", err->errnum, err->message);
    case DL_ERR_TYPE:
      napi_throw_type_error (env, "ERR_INVALID_ARG_TYPE", err->message);
      return NULL;
    case DL_ERR_VALUE:
      napi_throw_type_error (env, "ERR_INVALID_ARG_VALUE", err->message);
      return NULL;
    case DL_ERR_RANGE:
      napi_throw_range_error (env, "ERR_OUT_OF_RANGE", err->message);
      return NULL;
    case DL_ERR_PENDING:
    case DL_ERR_NONE:
    default:
      return NULL;
    }
}

napi_status
dl_error_set_classes (napi_env env, napi_value system_error, napi_value start_error)
{
  struct dl_addon *addon = dl_addon_get (env);
  if (addon == NULL)
    return napi_generic_failure;
  napi_status s;
  if (addon->system_error)
    napi_delete_reference (env, addon->system_error);
  if (addon->start_error)
    napi_delete_reference (env, addon->start_error);
  addon->system_error = addon->start_error = NULL;
  if ((s = napi_create_reference (env, system_error, 1, &addon->system_error)) != napi_ok)
    return s;
  return napi_create_reference (env, start_error, 1, &addon->start_error);
}

int
dl_get_args (napi_env env, napi_callback_info info, size_t n, napi_value *argv)
{
  size_t argc = n;
  if (napi_get_cb_info (env, info, &argc, argv, NULL, NULL) != napi_ok)
    return -1;
  for (size_t i = argc; i < n; i++)
    napi_get_undefined (env, &argv[i]);
  return 0;
}
