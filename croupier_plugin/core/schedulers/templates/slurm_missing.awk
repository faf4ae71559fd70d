#@ squeue's rows -> the wanted ids (-v ids=a,b,...) squeue does not show, and the
#@ arrays whose elements squeue shows all ended (some may have been purged
#@ already): the ids sacct is asked about, comma-separated. live: squeue's
#@ states of a job that has not ended, as an alternation.
BEGIN{n=split(ids,a,",");for(i=1;i<=n;i++)w[a[i]]=1}
{split($1,b,/[_+]/);if($2~/^(@{live})$/||$1!~/_/){l[b[1]]=1;l[$1]=1}}
END{s="";for(k in w)if(!(k in l))s=s (s==""?"":",") k;print s}
