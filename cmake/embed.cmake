# Writes OUT, a C file that holds the bytes of IN as NAME[] and NAME_len:
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
# The relay embeds its BPF object this way, so nothing is looked up at run
# time.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n    "
       bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from ${IN} by cmake/embed.cmake. */\n#include <stddef.h>\n\n"
     "extern const unsigned char ${NAME}[];\nextern const size_t ${NAME}_len;\n\n"
     "const unsigned char ${NAME}[] __attribute__((aligned(8))) = {\n    ${bytes}\n};\n"
     "const size_t ${NAME}_len = ${len};\n")
