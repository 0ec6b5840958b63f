# Effective loss weight of each sequence against its length, per strategy: the sum of its target
# tokens' weights times the plan's mean M (sequences per optimizer step), so 1 means the sequence
# counts as much as any other over the epoch (LongAlign Eq. 2's goal). Files written before that
# metric give weight x M of the sequence's own step instead (1: equal share within its step). The
# .dat has one block per strategy, its first line the strategy's name, then rows of (length in
# tokens, weight).
# Variables (gnuplot -e): data = the .dat that `labench report` writes, out = the image,
# fmt = png | svg (default: from out's name), subtitle = a line under the title, ylabel = what
# the weight is relative to.
if (!exists("data")) data = 'weights.dat'
if (!exists("out")) out = 'weights.png'
if (!exists("fmt")) fmt = strstrt(out, '.svg') > 0 ? 'svg' : 'png'
if (!exists("subtitle")) subtitle = ''
if (!exists("ylabel")) ylabel = 'weight x mean M (1 = epoch-uniform)'
W = 900; H = 520
if (fmt eq 'svg') { set terminal svg size W,H font 'Sans,12' background '#ffffff' noenhanced } \
else { set terminal pngcairo size W,H font 'Sans,11' background '#ffffff' noenhanced }
set output out
set linetype 1 lc rgb '#4477aa'; set linetype 2 lc rgb '#ee6677'; set linetype 3 lc rgb '#228833'
set linetype 4 lc rgb '#ccbb44'; set linetype 5 lc rgb '#66ccee'; set linetype 6 lc rgb '#aa3377'
set linetype 7 lc rgb '#222222'; set linetype 8 lc rgb '#bbbbbb'; set linetype cycle 8

set datafile columnheaders
stats data using 2 nooutput
nb = STATS_blocks
set title "Effective loss weight of each sequence against its length\n".subtitle
set xlabel 'sequence length (tokens, log scale)'
set ylabel ylabel
set logscale x
set logscale y
set grid
set xtics nomirror
set ytics nomirror
set key top left opaque box
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#555555'
plot for [i = 0 : nb - 1] data index i using 1:2 with points lt (i + 1) pt (i + 5) ps 1.2 title columnheader(1)
