//! huatuo's kernel templates: precompiled CO-RE eBPF objects, their schemas and the loader.
