# Training loss against optimizer step, one line per strategy. The .dat has one block per
# strategy, its first line the strategy's name, then rows of (step, loss).
# Variables (gnuplot -e): data = the .dat that `labench report` writes, out = the image,
# fmt = png | svg (default: from out's name), subtitle = a line under the title.
if (!exists("data")) data = 'loss.dat'
if (!exists("out")) out = 'loss.png'
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
last_step = STATS_max_x
set title "Training loss by strategy\n".subtitle
set xlabel 'optimizer step'
set ylabel 'loss (weighted cross-entropy, nats/token)'
set grid
set xtics nomirror
if (last_step <= 20) { set xtics 1 }
set ytics nomirror
set key top right opaque box
plot for [i = 0 : nb - 1] data index i using 1:2 with linespoints lt (i + 1) pt (i + 5) lw 2 title columnheader(1)
