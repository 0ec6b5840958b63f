# Distribution of the per-step DP wall time by strategy: one point per optimizer step, a bar at
# the median. Block 0 of the .dat: x, strategy, seconds, step; block 1: x, strategy, median.
# Variables (gnuplot -e): data = the .dat that `labench report` writes, out = the image,
# fmt = png | svg (default: from out's name), subtitle = a line under the title.
if (!exists("data")) data = 'step_times.dat'
if (!exists("out")) out = 'step_times.png'
if (!exists("fmt")) fmt = strstrt(out, '.svg') > 0 ? 'svg' : 'png'
if (!exists("subtitle")) subtitle = ''
W = 900; H = 520
if (fmt eq 'svg') { set terminal svg size W,H font 'Sans,12' background '#ffffff' noenhanced } \
else { set terminal pngcairo size W,H font 'Sans,11' background '#ffffff' noenhanced }
set output out
set linetype 1 lc rgb '#4477aa'; set linetype 2 lc rgb '#ee6677'; set linetype 3 lc rgb '#228833'
set linetype 4 lc rgb '#ccbb44'; set linetype 5 lc rgb '#66ccee'; set linetype 6 lc rgb '#aa3377'
set linetype 7 lc rgb '#222222'; set linetype 8 lc rgb '#bbbbbb'; set linetype cycle 8

stats data index 1 using 1 nooutput
set xrange [0.4 : STATS_max + 0.6]
set title "DP wall time of each optimizer step, by strategy\n".subtitle
set ylabel 'DP wall time per optimizer step (s)'
set xlabel 'strategy'
set yrange [0:*]
set offsets 0, 0, graph 0.05, 0
set grid ytics
set xtics nomirror
set ytics nomirror
set jitter overlap 0.02 spread 0.6
set key top right
plot data index 0 using 1:3:1:xtic(2) with points pt 7 ps 1.3 lc variable notitle, \
     '' index 1 using ($1 - 0.28):3:(0.56):(0) with vectors nohead lw 3 lc rgb '#222222' title 'median', \
     keyentry with points pt 7 ps 1.3 lc rgb '#777777' title 'one optimizer step'
