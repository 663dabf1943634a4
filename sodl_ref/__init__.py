"""sodl_ref: the reference library of the Science of Deep Learning course.

One module per idea (``foundations``, ``kernels``, ``diffusion``...). Pure
functions first; float64 torch tensors in and out (numpy accepted);
explicit random generators, never the global RNG. Every function cites its
source and states shapes. Instructor-only: hidden tests import it, students
never receive it.
"""
