"""Memory management: pausing the cyclic garbage collector around big batches
(`pause`), running it on a schedule instead of automatically, as Synapse does
(`manager`), and capping the C allocator's arenas (`arenas`)."""
