// DOM names that effect's own declarations use and a worker program (no DOM lib) lacks:
// persistence/KeyValueStore.d.ts names `Storage` (localStorage); rpc/RpcClient.d.ts (reached through effect/sql) `Transferable`.
interface Storage {}
type Transferable = unknown
