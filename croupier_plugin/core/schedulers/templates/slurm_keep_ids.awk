#@ squeue's rows of all the user's jobs -> the rows of the wanted ids (-v ids=a,b,...)
#@ and of their array elements
BEGIN{n=split(ids,a,",");for(i=1;i<=n;i++)w[a[i]]=1}
{split($1,b,/[_+]/);if((b[1] in w)||($1 in w))print}
