/* File system calls Node lacks, for layer unpacking and directory import:
   mknod and the l*xattr family (the FsOps of src/image/fsops.ts). */
#ifndef DOCKLESS_FSOPS_H
#define DOCKLESS_FSOPS_H

#include <node_api.h>

napi_value dl_napi_mknod (napi_env env, napi_callback_info info);
napi_value dl_napi_lsetxattr (napi_env env, napi_callback_info info);
napi_value dl_napi_lgetxattr (napi_env env, napi_callback_info info);
napi_value dl_napi_llistxattr (napi_env env, napi_callback_info info);

#endif
