function B = expand(A, S)
% Stand-in for the toolbox's util/expand.m (a MATLAB File Exchange function, not copied here):
% replaces every element of A by an S(1)×S(2)×S(3) block of copies, which is all cnnbp uses.
    B = repelem(A, S(1), S(2), S(3));
end
