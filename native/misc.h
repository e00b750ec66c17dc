/* Small host-side helpers: pipes, pseudo-terminals, flock, unmount. */
#ifndef DOCKLESS_MISC_H
#define DOCKLESS_MISC_H

#include <node_api.h>

napi_value dl_napi_pipe (napi_env env, napi_callback_info info);
napi_value dl_napi_openpty (napi_env env, napi_callback_info info);
napi_value dl_napi_open_console (napi_env env, napi_callback_info info);
napi_value dl_napi_resize_pty (napi_env env, napi_callback_info info);
napi_value dl_napi_flock (napi_env env, napi_callback_info info);
napi_value dl_napi_unmount (napi_env env, napi_callback_info info);

#endif
