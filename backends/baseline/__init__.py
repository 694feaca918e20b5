"""The baseline tier: native code without LLVM at load time (copy-and-patch).

:mod:`.library` builds (once per zjit version x target x CPU, cached like code)
and loads the stencil library; :mod:`.assembler` copies and patches stencils
into the baseline code of one program in one linear pass.
"""
