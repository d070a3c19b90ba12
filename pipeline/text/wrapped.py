"""The characters that stand as tokens of their own in each matching mode: read by matching's preparation in
Python and by the compiled kernel's byte tables (token_kernel), so that both follow one statement of them."""

# MetaCLIP v1's `spacing`: these get a space on each side, and these others become spaces
METACLIP_WRAPPED = (",", ".", ";", ":", "?", "!", "`")
METACLIP_SPACED = ("\t", "\n", "\r")
# default mode: always tokens of their own
DEFAULT_WRAPPED = tuple(",.;:?!`\"()[]{}<>/\\|-\u2013\u2014\u2026")

# What a byte does to the token it is in, in the compiled walk's byte tables (token_kernel)
REGULAR, SEPARATOR, OWN_TOKEN = 0, 1, 2
