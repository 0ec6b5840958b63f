# Sequences per optimizer step (M) against the step, one line per strategy. Under AdamW a
# sequence moves the model by about 1/M of its step, so a flat line is what LongAlign's Eq. 2
# needs over an epoch. The .dat has one block per strategy, its first line the strategy's name,
# then rows of (step, M); long plans list every k-th step.
# Variables (gnuplot -e): data = the .dat that `labench report` writes, out = the image,
# fmt = png | svg (default: from out's name), subtitle = a line under the title.
if (!exists("data")) data = 'step_sequences.dat'
if (!exists("out")) out = 'step_sequences.png'
if (!exists("fmt")) fmt = strstrt(out, '.svg') > 0 ? 'svg' : 'png'
if (!exists("subtitle")) subtitle = ''
W = 900; H = 520
if (fmt eq 'svg') { set terminal svg size W,H font 'Sans,12' background '#ffffff' noenhanced } \
else { set terminal pngcairo size W,H font 'Sans,11' background '#ffffff' noenhanced }
set output out
set linetype 1 lc rgb '#4477aa'; set linetype 2 lc rgb '#ee6677'; set linetype 3 lc rgb '#228833'
set linetype 4 lc rgb '#ccbb44'; set linetype 5 lc rgb '#66ccee'; set linetype 6 lc rgb '#aa3377'
set linetype 7 lc rgb '#222222'; set linetype 8 lc rgb '#bbbbbb'; set linetype cycle 8

set datafile columnheaders
stats data using 1:2 nooutput
nb = STATS_blocks
set title "Sequences per optimizer step (M)\n".subtitle
set xlabel 'optimizer step'
set ylabel 'M: sequences in the step (log scale)'
set logscale y
set grid
set xtics nomirror
set ytics nomirror
set key top right opaque box
plot for [i = 0 : nb - 1] data index i using 1:2 with points lt (i + 1) pt 7 ps 0.5 title columnheader(1)
