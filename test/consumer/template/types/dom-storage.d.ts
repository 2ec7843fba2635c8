// effect's persistence/KeyValueStore.d.ts names the DOM's `Storage` (localStorage), which a worker program (no DOM lib) lacks.
interface Storage {}
