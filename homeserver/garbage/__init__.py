"""The cyclic garbage collector: pausing it around big batches (`pause`), and running
it on a schedule instead of automatically, as Synapse does (`manager`)."""
