// The registry of --attn methods: one line per method, METHOD(name, summary), with its factory
// make_<name>(const AttnSpec&, const KernelOptions&) defined in methods/<file>.cpp. Included by
// methods.h to declare the factories and to list them (dense first: make_backend's order).
METHOD(dense, "exact attention over every block")
METHOD(radial, "Radial Attention's static energy-decay mask (frame-major, 128-block shrink rule)")
METHOD(radial3d, "radial decay with a 3D spatial window in tile units")
METHOD(window, "3D sliding tile window (STA/NATTEN) plus first-frame sink and optional tile summaries")
METHOD(svg, "Sparse VideoGen: per-head spatial or temporal band chosen by online profiling")
METHOD(topp, "dynamic key blocks reaching softmax mass p from mean-pooled q and k blocks")
METHOD(svg2, "Sparse VideoGen 2: k-means clusters of q and k, tokens sorted by cluster, top-p over cluster pairs")
METHOD(paro, "PAROAttention: per-head axis order and static block mask from `ditgen calibrate`")
