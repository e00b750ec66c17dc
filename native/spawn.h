/* spawn(spec, onExit): see spawn.c for the two clone designs. */
#ifndef DOCKLESS_SPAWN_H
#define DOCKLESS_SPAWN_H

#include <node_api.h>

napi_value dl_napi_spawn (napi_env env, napi_callback_info info);

#endif
